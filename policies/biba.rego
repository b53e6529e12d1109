# Biba: integrity over ordered levels (0 is the lowest).
# No read down: a subject reads only objects at or above its integrity.
# No write up: a subject writes only objects at or below its integrity.
#
# Reads: input.access ("read" or "write"), input.integrity (integer, the subject's level),
# input.object.attributes.integrity (integer, the object's level).
package kest.biba

import data.kest.lib

default allow := false

levels_known if {
	lib.is_long(input.integrity)
	lib.is_long(input.object.attributes.integrity)
}

allow if {
	input.access == "read"
	levels_known
	input.object.attributes.integrity >= input.integrity
}

allow if {
	input.access == "write"
	levels_known
	input.object.attributes.integrity <= input.integrity
}

reasons contains "no read down: the object's integrity is below the subject's" if {
	input.access == "read"
	levels_known
	input.object.attributes.integrity < input.integrity
}

reasons contains "no write up: the object's integrity is above the subject's" if {
	input.access == "write"
	levels_known
	input.object.attributes.integrity > input.integrity
}

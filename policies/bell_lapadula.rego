# Bell-LaPadula: confidentiality over ordered levels (0 is the lowest).
# No read up: a subject reads only objects at or below its clearance.
# No write down: a subject writes only objects at or above its clearance.
#
# Reads: input.access ("read" or "write"), input.clearance (integer, the subject's level),
# input.object.attributes.level (integer, the object's classification).
package kest.bell_lapadula

import data.kest.lib

default allow := false

levels_known if {
	lib.is_long(input.clearance)
	lib.is_long(input.object.attributes.level)
}

allow if {
	input.access == "read"
	levels_known
	input.clearance >= input.object.attributes.level
}

allow if {
	input.access == "write"
	levels_known
	input.clearance <= input.object.attributes.level
}

reasons contains "no read up: the object's level is above the subject's clearance" if {
	input.access == "read"
	levels_known
	input.clearance < input.object.attributes.level
}

reasons contains "no write down: the object's level is below the subject's clearance" if {
	input.access == "write"
	levels_known
	input.clearance > input.object.attributes.level
}

reasons contains "clearance and object level must both be integers" if {
	not levels_known
}

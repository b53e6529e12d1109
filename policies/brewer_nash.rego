# Brewer-Nash (the Chinese wall): once a subject has accessed one company in a conflict
# class, it may not access a competitor in the same class. Decided from the subject's
# access history.
#
# Reads: input.object.attributes.company (string), input.object.attributes.conflict_class
# (string; absent or null for data outside any class), input.history (absent, null, or a
# list of {"company": string, "conflict_class": string}).
package kest.brewer_nash

import data.kest.lib

default allow := false

valid_entry(entry) if {
	is_string(entry.company)
	is_string(entry.conflict_class)
}

history := [] if not lib.present(input, "history")

history := input.history if {
	is_array(input.history)
	every entry in input.history {
		valid_entry(entry)
	}
}

# Data outside any conflict class is open to everyone.
allow if {
	is_object(input.object.attributes)
	not lib.present(input.object.attributes, "conflict_class")
}

allow if {
	is_string(input.object.attributes.conflict_class)
	is_string(input.object.attributes.company)
	is_array(history)
	count(competitors) == 0
}

# Companies in the object's conflict class that the subject has accessed, other than the
# object's own company.
competitors contains entry.company if {
	some entry in history
	entry.conflict_class == input.object.attributes.conflict_class
	entry.company != input.object.attributes.company
}

reasons contains sprintf("conflict of interest: already accessed %v in class %v", [company, input.object.attributes.conflict_class]) if {
	some company in competitors
}

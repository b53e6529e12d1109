# Clearance: a subject acts when its trust score is at least 80, or when it is an admin
# making a configuration change. Requests from a restricted country are always denied.
#
# Reads: input.subject.trust_score (integer), input.operation_kind (string), input.role
# (string), input.country (string), input.restricted_countries (a list of strings).
package kest.clearance

import data.kest.lib

default allow := false

country_allowed if {
	is_string(input.country)
	is_array(input.restricted_countries)
	not input.country in input.restricted_countries
}

allow if {
	country_allowed
	lib.is_long(input.subject.trust_score)
	input.subject.trust_score >= 80
}

allow if {
	country_allowed
	input.operation_kind == "config_change"
	input.role == "admin"
}

reasons contains sprintf("requests from %v are restricted", [input.country]) if {
	is_array(input.restricted_countries)
	input.country in input.restricted_countries
}

reasons contains "trust score below 80 and not an admin configuration change" if {
	country_allowed
	not allow
}

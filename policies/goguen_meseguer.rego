# Goguen-Meseguer: non-interference between security domains. A subject acts freely
# within its own domain; across domains only where the interference relation allows
# information to flow from its domain to the object's.
#
# Reads: input.domain (string, the subject's domain), input.object.attributes.domain
# (string), input.interference (a list of {"from", "to"} objects: permitted flows).
package kest.goguen_meseguer

default allow := false

allow if {
	is_string(input.domain)
	input.domain == input.object.attributes.domain
}

allow if {
	is_string(input.domain)
	is_string(input.object.attributes.domain)
	is_array(input.interference)
	{"from": input.domain, "to": input.object.attributes.domain} in input.interference
}

reasons contains sprintf("no permitted flow from domain %v to domain %v", [input.domain, input.object.attributes.domain]) if {
	not allow
}

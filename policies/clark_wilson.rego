# Clark-Wilson: constrained data items (CDIs) change only through certified transformation
# procedures, run by users certified for them. Access is allowed only through a certified
# (user, transformation, item) triple; unconstrained items are open.
#
# Reads: input.subject.user (string), input.transformation (string), input.object.id
# (string), input.object.attributes.constrained (boolean; anything but false counts as
# constrained), input.certified (a list of {"user", "transformation", "item"} objects;
# a triple must match one exactly).
package kest.clark_wilson

default allow := false

allow if input.object.attributes.constrained == false

allow if {
	is_string(input.subject.user)
	is_string(input.transformation)
	is_string(input.object.id)
	is_array(input.certified)
	triple in input.certified
}

triple := {
	"user": input.subject.user,
	"transformation": input.transformation,
	"item": input.object.id,
}

reasons contains sprintf("no certified triple for user %v, transformation %v, item %v", [input.subject.user, input.transformation, input.object.id]) if {
	not allow
}

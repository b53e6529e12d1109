# Helpers shared by the Kest model library. They mirror how the Cedar versions fail:
# where Cedar raises a type error (and so denies), these make the rule body fail.
package kest.lib

# A whole number, as Cedar's Long. Whole-valued doubles such as 3.0 count, because Kest
# passes them to Cedar as Longs.
is_long(x) if {
	is_number(x)
	floor(x) == x
}

# Present and not null. Cedar leaves null members out, so `has` is false for them.
present(obj, key) if object.get(obj, key, null) != null

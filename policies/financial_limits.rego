# Financial limits: a transaction is allowed only under its per-transaction limit, for a
# positive amount, of a known kind, at low or medium risk; withdrawals also need MFA.
# High risk is always denied.
#
# Reads: input.transaction.kind ("payment", "transfer" or "withdrawal"),
# input.transaction.amount (integer, in minor units), input.limit (integer),
# input.risk ("low", "medium" or "high"), input.mfa (boolean).
package kest.financial_limits

import data.kest.lib

default allow := false

within_limit if {
	input.risk in {"low", "medium"}
	lib.is_long(input.transaction.amount)
	lib.is_long(input.limit)
	input.transaction.amount > 0
	input.transaction.amount <= input.limit
}

allow if {
	input.transaction.kind in {"payment", "transfer"}
	within_limit
}

allow if {
	input.transaction.kind == "withdrawal"
	input.mfa == true
	within_limit
}

reasons contains "high risk is always denied" if input.risk == "high"

reasons contains "the amount exceeds the per-transaction limit" if {
	lib.is_long(input.transaction.amount)
	lib.is_long(input.limit)
	input.transaction.amount > input.limit
}

reasons contains "withdrawals need MFA" if {
	input.transaction.kind == "withdrawal"
	input.mfa != true
}

"""semrsm: semantic (permutation-invariant) representational similarity matrices."""

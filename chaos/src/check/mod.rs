//! Checkers: pure functions from a recorded history to a verdict. None of them performs I/O.

"""The invoice's collection rules as one pure machine.

`machine.apply(state, command, now)` and `machine.tick(state, now)` return the new state and
the effects to carry out (messages to send, records to write, notifications); a refused command
returns a typed `Refusal` and leaves the state as it was. No I/O, no temporalio: the workflow
interprets the effects, and property tests drive the machine with thousands of sequences.
"""

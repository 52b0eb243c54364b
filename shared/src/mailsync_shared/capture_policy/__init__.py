"""Contact capture: the rules, applying them to a message, and reviewing a rule change.

- `rules`: the pure decision for one participant (which rule decides, in which order).
- `capturing`: one message -> decisions stored, contacts (and optionally companies) created.
- `review`: `preview`, `apply` and `explain` over the mail already logged, for the api.
"""

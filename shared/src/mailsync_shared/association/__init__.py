"""Linking threads to contacts, companies and deals: automatic rules, suggestions, manual links.

- `linking`: the pure rules for which records a thread's participants match, and why.
- `records`: loading the candidate records and a thread's owner addresses from the store.
- `relink`: growing the links of stored threads after records appeared (a rule change).
- `manual`: a person's (re)association of a thread, and suggestions for unassigned threads.
"""

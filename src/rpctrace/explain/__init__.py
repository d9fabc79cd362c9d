"""Explain: the first failure of a call, the identity it ran under, the ACL verdict and the fix."""

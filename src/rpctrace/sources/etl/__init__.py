"""rpctrace."""

"""Webhook delivery: one signed POST at a time, to public addresses only."""

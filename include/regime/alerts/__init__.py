"""Alerts on extreme readings: rules, the outbox (de-duplication, never lost), rendering and sending."""

"""Delivery of events to applications: outbox relays to webhooks and Redis Streams.

Reads what the other packages wrote (events, feed_outbox, and the lifecycle
rows that db/migrations/0010_delivery.sql's triggers add in the writing
transaction) in commit order, fans each subscription's share out into
`delivery_messages`, and sends those at least once with a stable id.
"""

"""Payment intents: scheduled, conditional payouts through the exactly-once pipeline.

`spec` validates what an intent says, `schedule` turns it into instants,
`store` is what the API and CLI call, `scheduler` materialises occurrences,
evaluates `conditions` and requests payouts, `fees` reads the chain's fee.
"""

"""Genesis templates and the builder that turns them into a CometBFT genesis.json."""

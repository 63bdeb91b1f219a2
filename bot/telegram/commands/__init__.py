"""The chat commands, one module per area; bot.telegram.registry lists them."""

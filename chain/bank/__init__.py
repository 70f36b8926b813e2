"""The bank module: balances, transfers (MsgSend) and total supply per denom."""

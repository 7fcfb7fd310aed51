"""One module per publisher: where its bytes come from and one parser from bytes to a typed DataFrame."""

"""Released shapes of workflow code, kept while running histories need them."""

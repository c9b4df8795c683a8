"""Where the text comes from and how it is cut: sources, cleaning, tokenizer, token store, batches."""

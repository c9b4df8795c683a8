"""How a model leaves: export to the Hugging Face format and import back."""

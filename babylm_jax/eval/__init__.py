"""How a model is judged: BabyLM zero-shot suites and (Super)GLUE fine-tuning."""

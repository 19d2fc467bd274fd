"""Image -> list[Person] estimators: preprocessing, model, decoding and exact back-mapping to pixels."""

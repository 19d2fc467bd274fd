"""Networks and weight importers (TF.js graph models executed with torch ops)."""

"""Deraining zoo: the rain renderer (render.py), its data sets (prepare_data.py) and classical baselines."""

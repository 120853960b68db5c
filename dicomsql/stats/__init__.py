"""Pure statistics (numpy, scipy, lifelines; never pyspark): each model a fit/predict pair over plain-data models."""

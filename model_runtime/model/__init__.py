"""What the SleepLM model is: its parts, its text side, its heads and its files. Imports no other job."""

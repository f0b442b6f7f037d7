"""What people read: progress lines (`lines`, imported by Ray workers: no pandas, no matplotlib),
tables, plots and Deck pages (`decks`), and the end-of-run terminal summary (`summary`).
Pure data in, text and pictures out.
"""

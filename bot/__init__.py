"""Answering questions with citations over the article index, and the ways people reach it."""

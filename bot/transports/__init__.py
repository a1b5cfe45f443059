"""Ways to reach the question-answering service: Discord (`discord_client`, `qa_cog`)."""

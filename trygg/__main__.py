from trygg.cli import app

app()

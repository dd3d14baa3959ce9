"""`report`: aggregation core -> Report (model.py) -> text, JSON or Markdown (render_*.py)."""

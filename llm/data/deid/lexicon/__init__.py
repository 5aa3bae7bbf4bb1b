"""Word lists shipped with the de-identification recognizers (package data)."""

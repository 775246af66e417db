"""The stages of one pass — discover, stage, validate, promote, bake — and the reconciler that runs them."""

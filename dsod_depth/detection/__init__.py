"""Detection core: boxes, default boxes, box coding, matching, loss, post-processing (pure tensor code)."""

"""What several rooms share: the checks on names, folders and datasets (`checks`), and the process-level memory
setting of the scripts (`runtime.keep_freed_memory`)."""

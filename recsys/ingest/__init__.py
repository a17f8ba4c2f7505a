"""Reading review and catalog files of every supported format into the store."""

"""What the commands share at the terminal: tables, progress lines, option types and interrupts."""

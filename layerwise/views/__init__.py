"""What the commands print and draw: tables and plots of results (terminal and PNG; no work)."""

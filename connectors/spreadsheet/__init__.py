"""Sales lead spreadsheets (CSV and XLSX) dropped into a directory."""

"""A real record-date register: the transfer agent's, DTC's and the nominees' CSV files, checked and chunked."""

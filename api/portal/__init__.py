"""The debtor portal: a personal page, reached by a signed link, to pay, dispute, propose a
plan, promise a date or correct contact details. `routes.install_portal` wires it in."""

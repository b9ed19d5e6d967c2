"""The values every layer shares: run records, comparisons and their enums (types), the
diagnosis's values, statistics and the environment key's fields. Pure; imports only the
foundation (units, errors)."""

"""Money (SPEC section 15): what a lead cost, earned and returned, to the cent.

``pricing``: a source's cost, a recipient's revenue, a ping quote's margin (pure, Decimal
from the YAML on); ``ledger``: the immutable rows (``NUMERIC``), written in the same
transactions as what they account for; ``reports``: queries over leads, deliveries and
the ledger.
"""

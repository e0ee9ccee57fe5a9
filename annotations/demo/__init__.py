"""Demo and development data (the synthetic demo CT, follow-up patients, simulated reader studies). Never imported
by the product's service layer.
"""

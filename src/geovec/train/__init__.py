"""Contrastive training of geovec encoders (see README "Training")."""

"""Latent action-conditioned video diffusion world model: autoencoder, denoiser, EDM, samplers, heads."""

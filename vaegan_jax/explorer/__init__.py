"""A latent-space explorer in the browser for any trained checkpoint (``explore.py``).

``directions``: the sliders' directions (attribute vectors, principal components, CCVAE's
label blocks) and the code edits they make; ``server``: the page and its JSON API over
``vaegan_jax.load``; ``page.html``: the page.
"""

from vaegan_jax.explorer.directions import Direction, edit  # noqa: F401
from vaegan_jax.explorer.server import Explorer, make_server  # noqa: F401

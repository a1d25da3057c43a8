"""The config schema shared by every ``configs/*.py`` file, and its validation.

``base_config()`` returns an ``ml_collections.ConfigDict`` holding every key the framework
reads, with the VAE/GAN defaults of Larsen et al.'s original code. ``configs/*.py`` files
start from it and change only what differs. The dict is type-safe (assigning a str to a
float key raises) and, once locked by ``train.py``, an unknown key is an error.
"""

from __future__ import annotations

import json

import ml_collections

METHODS = ("vaegan", "vae", "gan", "tvae", "aae", "semi_aae", "mlvae", "ccvae")
DATASETS = ("mnist5k", "mnist", "fashion_mnist", "celeba64")
LLIKES = ("dis_l", "pixel", "bernoulli", "laplace")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
SCHEDULES = ("exponential", "power")
PRIORS = ("gaussian", "mixture")
MLVAE_NETWORKS = ("mlp", "conv")
GROUP_FEATURES = ("label", "identity")
CCVAE_NETWORKS = ("mlp", "conv")
CCVAE_OBJECTIVES = ("ccvae", "classifier")
# The 18 CelebA labels of the official CCVAE code (CELEBA_EASY_LABELS).
CCVAE_CELEBA_LABELS = (
    "Arched_Eyebrows", "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Eyeglasses", "Heavy_Makeup", "Male", "No_Beard", "Pale_Skin", "Receding_Hairline", "Smiling",
    "Wavy_Hair", "Wearing_Necktie", "Young")
DIGITS = tuple(str(d) for d in range(10))
GENERATOR_LOSSES = ("minimax", "non_saturating")
# Padding of the Larsen networks' 5x5 stride-2 layers: PyTorch's (2 on every side; the PyTorch
# port's layers), or XLA's 'SAME' that every run saved before 2026-11-30 was trained with.
CONV_PADDINGS = ("pytorch", "same")
DTYPES = ("float32", "bfloat16")
# model.dtype may also be "auto": resolved by trainer.setup to one of DTYPES (parallel.compute_dtype).
MODEL_DTYPES = ("auto", *DTYPES)


def _optimizer() -> ml_collections.ConfigDict:
  # schedule "exponential": the rate times `decay_per_epoch` at each epoch, floored at
  # `min_learning_rate`; "power": Larsen et al.'s code (deeppy's GammaAnnealer), from
  # `learning_rate` at epoch 0 down towards `min_learning_rate` at the end of the run as
  # (epoch / epochs of the run) ** `decay_power`. An epoch is `decay_epoch_images` images seen
  # (0: one pass over the training split); the original's was 250 batches of 64 (16,000 images).
  # Defaults: RMSProp 3e-4, x0.75 per pass down to 1e-5, weight decay 1e-5.
  # Also: "adam" (adam_b1), "sgd" with `momentum` (Makhzani et al.'s AAE), and step drops: the
  # rate is multiplied by `step_decay` at each epoch of `step_decay_epochs` (the AAE's schedule;
  # these epochs are passes over the training split).
  return ml_collections.ConfigDict(dict(
      optimizer="rmsprop", learning_rate=3e-4, schedule="exponential", decay_per_epoch=0.75, decay_power=0.75,
      decay_epoch_images=0, min_learning_rate=1e-5, rmsprop_decay=0.9, adam_b1=0.9, momentum=0.9, eps=1e-8,
      weight_decay=1e-5, step_decay_epochs=(), step_decay=0.1))


def base_config() -> ml_collections.ConfigDict:
  """Every key the framework reads, with VAE/GAN defaults (64x64 CelebA widths)."""
  c = ml_collections.ConfigDict()
  # one of METHODS: vaegan, vae (no discriminator), gan (no encoder), tvae, aae, semi_aae, mlvae, ccvae
  c.method = "vaegan"
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "mnist5k"      # one of DATASETS, "folder" (data.path) or "tfds:<catalog name>"
  c.data.manual_dir = ""       # raw files; "" = $VAEGAN_DATA_DIR/<dataset folder>
  c.data.data_dir = ""         # prepared tfds data; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.validation_split = ""  # aae: held-out split choosing the Parzen bandwidth ("" = none)
  c.data.num_threads = 4       # grain read threads
  # data.name="folder" (your own images) and "tfds:<name>" (any tfds catalog dataset): images are
  # converted to data.channels, cropped (data.crop, else the centre square) and resized with
  # antialiasing to data.image_size, once, when the dataset is prepared.
  c.data.path = ""             # folder: the root of the image tree
  c.data.image_size = 64       # folder, tfds: side of the square images, pixels
  c.data.channels = 3          # folder, tfds: 3 (RGB) or 1 (grey)
  c.data.crop = ()             # folder, tfds: (left, top, right, bottom) box in source pixels; () = centre square
  c.data.upscale = False       # folder, tfds: allow images smaller than image_size (else an error)
  c.data.test_fraction = 0.1   # folder without train/ and test/ subfolders: share held out for test
  c.data.split_seed = 0        # folder: seed of that held-out draw
  c.data.skip_unreadable = False  # folder: skip unreadable image files (counted) instead of stopping
  c.data.image_key = "image"   # tfds: the feature holding the image
  c.data.label_key = "label"   # tfds: the feature holding the class label ("" = none)
  c.data.prefetch = 4          # batches read ahead of the device

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 128
  c.model.encoder_features = (64, 128, 256)
  c.model.encoder_dense = 1024
  c.model.decoder_features = (256, 128, 32)
  c.model.discriminator_features = (32, 128, 256, 256)
  c.model.discriminator_dense = 512
  c.model.bn_momentum = 0.9
  c.model.bn_epsilon = 1e-6
  c.model.dtype = "float32"    # compute dtype (MODEL_DTYPES); parameters stay float32
  c.model.conv_padding = "pytorch"  # one of CONV_PADDINGS; saved configs without it are "same"
  c.model.mlp_hidden = (400,)  # tvae, aae: hidden widths of each fully connected network

  c.loss = ml_collections.ConfigDict()
  c.loss.llike = "dis_l"       # reconstruction likelihood: Dis_l features or pixels
  c.loss.pixel_log_scale = -2.3  # log std of the pixel Gaussian (exp(-2.3) = 0.1 on [-1, 1])
  c.loss.gamma = 1e-2          # Dec <- gamma * L_llike - L_GAN
  # The decoder's adversarial term. "minimax" is Algorithm 1's -L_GAN literally; its gradient
  # vanishes once Dis rejects prior samples (D(Dec(z_p)) ~ 3e-4 after 10 CelebA steps), so the
  # decoder never learns to sample. "non_saturating" (Goodfellow et al. 2014) keeps it alive.
  c.loss.generator = "non_saturating"
  # TVAE (Ishfaq et al. 2018): elbo_weight * ELBO loss + triplet_weight * triplet(mu_a, mu_p, mu_n)
  # + mu_norm_weight * ||mu||, all means per image / triplet. triplet_weight=0 is the plain VAE.
  c.loss.elbo_weight = 1.0
  c.loss.triplet_weight = 1.0
  c.loss.triplet_margin = 0.2
  c.loss.mu_norm_weight = 1e-3

  # Adversarial autoencoders (Makhzani et al. 2015): aae (unsupervised) and semi_aae.
  c.aae = ml_collections.ConfigDict()
  c.aae.prior = "gaussian"     # one of PRIORS: N(0, I), or a mixture of num_components Gaussians
  c.aae.num_components = 10    # mixture components (= classes for the label-conditioned prior)
  c.aae.condition_on_label = False  # feed the one-hot label to D_z: class k -> component k
  c.aae.num_labels = 100       # semi_aae: labelled training examples, balanced over classes
  c.aae.normal_class = -1      # aae anomaly detection: train on this class only (-1 = all)
  c.aae.encoder_dropout = 0.0  # dropout after each hidden layer of the encoder, in training (0 = none)
  c.aae.init_std = 0.0         # > 0: every kernel ~ N(0, init_std^2), biases 0 (the paper: 0.01); 0: Flax's defaults
  c.aae.y_minibatch_mean = False  # semi_aae: D_y also sees its batch's mean y (minibatch statistics; else it collapses)
  c.aae.labelled_shift = 0     # semi_aae: translate each labelled image by up to this many pixels per axis (0 = none)
  c.aae.labelled_rotation = 0.0  # semi_aae: ... and rotate it by up to this many degrees (0 = none)
  c.aae.labelled_scale = 0.0   # semi_aae: ... and scale it by a factor in [1 - this, 1 + this] (0 = none)
  c.aae.consistency_weight = 0.0  # semi_aae: + this x KL(q(y|x) || q(y|deformed x)) on the unlabelled batch (0 = none)
  c.aae.consistency_rampup_steps = 0  # semi_aae: the weight ramps up as exp(-5 (1 - step / this)^2) (0 = no ramp)

  # ML-VAE (Bouchacourt et al. 2018): groups of group_size examples sharing group_by; each image
  # has a style latent, each group one content latent accumulated over its members.
  c.mlvae = ml_collections.ConfigDict()
  c.mlvae.group_by = "label"   # one of GROUP_FEATURES: MNIST's digit, or CelebA's "identity"
  c.mlvae.group_size = 16      # examples per group (train.batch_size counts images)
  c.mlvae.style_dim = 10
  c.mlvae.content_dim = 10
  c.mlvae.networks = "mlp"     # one of MLVAE_NETWORKS: model.mlp_hidden MLPs, or Larsen's conv nets

  # CCVAE (Joy et al. 2021): z = [z_c | z_\c], one block of z_c per binary label; labelled and
  # unlabelled batches interleaved so that exactly supervision_rate of the batches are labelled.
  c.ccvae = ml_collections.ConfigDict()
  c.ccvae.labels = DIGITS        # CelebA attribute names, or the digits "0".."9" (one-hot labels)
  c.ccvae.supervision_rate = 1.0  # fraction of the training split labelled (and of batches): (0, 1]
  c.ccvae.block_dim = 1          # size of each label's block of z_c (1 in the official code)
  c.ccvae.num_samples = 100      # K samples of z_c estimating log q(y|x) by log-mean-exp
  c.ccvae.networks = "mlp"       # one of CCVAE_NETWORKS: model.mlp_hidden MLPs, or the code's 64x64 convs
  c.ccvae.objective = "ccvae"    # one of CCVAE_OBJECTIVES; "classifier": the supervised-only baseline
  c.ccvae.walk_pairs = (("0", "1"),)  # eval: pairs of labels walked together (5x5 grids)

  c.balance = ml_collections.ConfigDict()
  c.balance.enabled = True
  c.balance.equilibrium = 0.68
  c.balance.margin = 0.35

  c.optim = ml_collections.ConfigDict()
  c.optim.encoder = _optimizer()
  c.optim.decoder = _optimizer()
  c.optim.discriminator = _optimizer()
  c.optim.generator = _optimizer()    # aae: the encoder's adversarial (regularisation) phase
  c.optim.classifier = _optimizer()   # semi_aae: the encoder's supervised phase on q(y|x); ccvae: q(y|z_c)
  c.optim.prior = _optimizer()        # ccvae: the conditional prior p(z_c|y)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64      # global batch, split over all devices
  c.train.num_steps = 10_000
  c.train.log_every = 50
  c.train.image_every = 500
  c.train.num_image_rows = 8   # image grids show num_image_rows**2 images
  # A step with a NaN/inf loss or gradient is skipped and counted (train/nonfinite_steps);
  # this many skipped in a row stop the run with an error, keeping the last good checkpoint.
  # 1 = stop at the first non-finite step.
  c.train.max_consecutive_nonfinite = 10

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.max_to_keep = 3

  c.eval = ml_collections.ConfigDict()     # eval.py (see vaegan_jax/evaluators/)
  c.eval.batch_size = 200                  # images per device call
  c.eval.classifier_epochs = 5             # the cached domain classifier's training
  c.eval.cache_dir = ""                    # "" = $VAEGAN_CACHE_DIR or ~/.cache/vaegan_jax
  # Attribute arithmetic (Larsen et al. 2016, sec. 5.2): z + strength * v_attribute.
  c.eval.attributes = ("Eyeglasses", "Smiling", "Male", "Blond_Hair", "Bangs", "Mustache")
  c.eval.strengths = (0.0, 0.5, 1.0, 1.5)
  c.eval.num_pairs = 8                     # interpolation figure: rows
  c.eval.interpolation_steps = 8           # interpolation figure: decoded points per row
  c.eval.triplets_per_class = 1000         # tvae: fixed test triplets per anchor class
  c.eval.intervention_images = 500         # ccvae: test images each label is intervened on
  # aae: Parzen-window log-likelihood of the test split (Goodfellow et al. 2014's protocol):
  # eval.parzen_samples decoded prior draws, the Gaussian kernel's bandwidth chosen among
  # parzen_num_bandwidths log-spaced values in [min, max] on data.validation_split.
  c.eval.parzen_samples = 10_000
  c.eval.parzen_min_bandwidth = 0.1
  c.eval.parzen_max_bandwidth = 1.0
  c.eval.parzen_num_bandwidths = 10
  return c


def small_networks(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The 28x28 (MNIST-like) variant: the paper's structure at a quarter width, latent 32.

  Chosen so that ``python train.py`` finishes in minutes on 2 CPU cores; widen it with
  ``--config.model.encoder_features=...`` etc. on an accelerator.
  """
  c.model.latent_dim = 32
  c.model.encoder_features = (16, 32, 64)
  c.model.encoder_dense = 256
  c.model.decoder_features = (64, 32, 16)
  c.model.discriminator_features = (16, 32, 64, 64)
  c.model.discriminator_dense = 256
  return c


def celeba64(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The CelebA-subset run shared by VAE/GAN and its baselines: the paper's 64x64 networks
  (the defaults) on the schedule of Larsen et al.'s code: 150 of its epochs of 250 batches of
  64 (37,500 steps, 16,000 images an epoch; 526 passes over the 4,560 training faces), RMSProp
  3e-4 annealed as (epoch / 150) ** 0.75 towards 1e-5 / 64 (``learning_rate_schedule``);
  images and checkpoints every 500 steps."""
  c.data.name = "celeba64"
  c.train.num_steps = 250 * 150
  c.train.log_every = 50
  c.train.image_every = 500
  c.checkpoint.every_steps = 500
  for name in ("encoder", "decoder", "discriminator"):
    o = c.optim[name]
    o.schedule = "power"
    o.decay_epoch_images = 250 * 64
    o.decay_power = 0.75
    o.min_learning_rate = 1e-5 / 64   # the code's lr_stop, divided by the batch as its lr_start is
  return c


def celeba64_cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``configs/{vaegan,vae,gan}_celeba.py:cpu``: the same networks at half the paper's width
  (encoder 32-64-128 + dense 512, decoder 128-64-16, discriminator 16-64-128-128 + dense 256;
  latent 128) for 1,775 steps of 64 (25 passes over the 4,560 faces, 7.1 of the code's
  epochs, the learning rate annealed over them): about 100 minutes of VAE/GAN on 2 CPU cores.

  Measured on 2 cores (2026-12-06, ``benchmarks/step_time.py``, batch 64, two rounds, images/s):
  VAE/GAN full width 6.4 / 6.2, half 18.6 / 20.2, 3/8 25.8 / 28.9, quarter 43.4 / 41.0; at a
  quarter, bf16 46.9 / 42.5 against f32 45.9 / 41.2 (no gain, so f32), latent 64 47.3 / 43.7
  (no gain, so the paper's 128). A quarter width was tried first and fails: its GAN's samples
  collapse to one texture within 100-300 steps (also with Adam 2e-4, balancing off, or the
  thin layers at 16 channels), and its VAE/GAN's samples are textures after 1,210 steps; at
  half width the GAN draws varied face-like blobs by step 200 (docs/models/vaegan.md).
  """
  c.model.encoder_features = (32, 64, 128)
  c.model.encoder_dense = 512
  c.model.decoder_features = (128, 64, 16)
  c.model.discriminator_features = (16, 64, 128, 128)
  c.model.discriminator_dense = 256
  c.train.num_steps = 71 * 25
  c.train.log_every = 10
  c.train.image_every = 355
  c.checkpoint.every_steps = 142
  return c


def constant_adam(c: ml_collections.ConfigDict, optimizers: tuple[str, ...], learning_rate: float = 1e-3) -> None:
  """Sets ``config.optim.<name>`` of each of ``optimizers`` to Adam at a constant ``learning_rate``
  with no weight decay: the setting of the VAE (Kingma & Welling) that TVAE, the AAE and ML-VAE
  build on, unlike VAE/GAN's decayed RMSProp."""
  for name in optimizers:
    o = c.optim[name]
    o.optimizer = "adam"
    o.learning_rate = learning_rate
    o.decay_per_epoch = 1.0
    o.min_learning_rate = 0.0
    o.weight_decay = 0.0


def tvae(c: ml_collections.ConfigDict, dataset: str) -> ml_collections.ConfigDict:
  """The TVAE run of Ishfaq et al. 2018 on ``dataset`` (mnist, fashion_mnist): the 784-400-20
  Bernoulli VAE, Adam 1e-3, batch 128 triplets, margin 0.2, 0.001 * ||mu||, 20 epochs of anchors."""
  c.method = "tvae"
  c.data.name = dataset
  c.loss.llike = "bernoulli"
  # Our terms are means per image and per triplet. Weight 50 is what reaches the paper's
  # triplet accuracy in 20 epochs; measured on MNIST test triplets (README "TVAE"):
  # weight 1 -> 84.4%, weight 10 -> 93.2% (after 5000 steps), weight 50 -> see README.
  c.loss.triplet_weight = 50.0
  c.model.latent_dim = 20
  c.model.mlp_hidden = (400,)
  constant_adam(c, ("encoder", "decoder"))   # as in the script
  c.train.batch_size = 128                 # triplets per step (384 images)
  c.train.num_steps = 468 * 20
  c.train.log_every = 100
  c.train.image_every = 1000
  c.checkpoint.every_steps = 1000
  return c


# The AAE's optimizers, one per phase (methods/aae.py: reconstruction by the encoder and decoder,
# the discriminators, the encoder as their generator, the semi-supervised classifier phase).
AAE_PHASES = ("encoder", "decoder", "discriminator", "generator", "classifier")


def aae(c: ml_collections.ConfigDict, method: str = "aae", latent_dim: int = 8) -> ml_collections.ConfigDict:
  """An adversarial autoencoder on MNIST as in Makhzani et al. 2015:
  encoder, decoder and latent discriminator(s) each 2 x 1000 ReLU, a Bernoulli decoder, a code
  of ``latent_dim`` (8 for likelihood, 2 for figures, 10 as the semi-supervised style), batch 100.

  The paper trains with SGD and momentum for thousands of epochs. We use constant-rate Adam:
  1e-3 for the reconstruction and classification phases, and for the adversarial phases
  (discriminators, and the encoder as generator; beta1 0.5, the GAN setting) 1e-4 for the
  unsupervised AAE and 1e-3 for semi_aae. Measured after 2500 steps (README "Adversarial
  autoencoders"): aae Parzen log-likelihood 296.9 at 1e-4 vs 154.9 at 1e-3 (a weaker
  regulariser keeps reconstructions, hence samples, sharp); semi_aae test error 17.0% at
  1e-3 vs 23.7% at 1e-4 (a stronger one pushes the class out of the style z into y). The
  last 10,000 training digits are held out to choose the Parzen bandwidth (the paper's
  protocol).
  """
  c.method = method
  c.data.name = "mnist"
  c.data.train_split = "train[:50000]"
  c.data.validation_split = "train[50000:]"
  c.loss.llike = "bernoulli"
  c.model.latent_dim = latent_dim
  c.model.mlp_hidden = (1000, 1000)
  constant_adam(c, AAE_PHASES)
  for name in ("discriminator", "generator"):
    c.optim[name].adam_b1 = 0.5          # the GAN setting for both adversarial phases
    c.optim[name].learning_rate = 1e-3 if method == "semi_aae" else 1e-4
  c.train.batch_size = 100
  c.train.num_steps = 500 * 100        # 100 epochs of the 50,000 training digits
  c.train.log_every = 100
  c.train.image_every = 2500
  c.checkpoint.every_steps = 2500
  return c


def mlvae(c: ml_collections.ConfigDict, dataset: str) -> ml_collections.ConfigDict:
  """ML-VAE (Bouchacourt et al. 2018) on ``dataset``.

  mnist: groups of 32 digits of one class, the public port's MLP (one hidden layer of 500;
  ReLU rather than its tanh, as every MLP of this project), style 10, content 10, the port's
  likelihood (its squared error on [0, 1] pixels is a Gaussian of variance 1/2 there: std
  sqrt(2) on [-1, 1], ``loss.pixel_log_scale = 0.3466``, around a sigmoid decoder), Adam 1e-3,
  batch 256 images (8 groups), 30 epochs. A Bernoulli decoder (``--config.loss.llike=bernoulli``)
  reconstructs sharper digits but lets the style carry the digit (a linear probe reads it from
  the style 62% of the time, against 27% here; README).

  celeba64: groups of 10 faces of one identity (152 training identities; the 22 test
  identities are unseen), Larsen et al.'s 64x64 convolutional encoder and decoder at full
  width, style 4, content 64, a Gaussian pixel likelihood (std 0.1 on [-1, 1]), Adam 1e-3
  (beta1 0.5), batch 80 (8 groups), 100 epochs: 2.5-4.5 minutes on an H100 shared with 3-10 runs.
  On a CPU, ``small_networks`` widths (README) run about 1 step/s on 2 cores.
  """
  c.method = "mlvae"
  c.data.name = dataset
  constant_adam(c, ("encoder", "decoder"))
  if dataset == "celeba64":
    c.mlvae.group_by = "identity"
    c.mlvae.group_size = 10
    # The style's size decides where the identity goes (swaps whose re-encoded content names
    # the column's unseen person / whose style names the row's, H100, 100 epochs, README):
    # style 64: 6% / 100% (30 CPU epochs, quarter width); 8: 39% / 100%; 4: 45% / 93%;
    # 2: 49% / 44% (pose and lighting no longer fit). With 4 numbers the style keeps pose,
    # lighting and background, and the identity the group shares goes to the content, paid
    # for once per group.
    c.mlvae.style_dim = 4
    c.mlvae.content_dim = 64
    c.mlvae.networks = "conv"
    c.loss.llike = "pixel"
    for name in ("encoder", "decoder"):
      c.optim[name].adam_b1 = 0.5
    c.train.batch_size = 80
    c.train.num_steps = 57 * 100          # 100 epochs of 57 batches of 8 identities
    c.train.log_every = 57
    c.train.image_every = 570
    c.checkpoint.every_steps = 570
  else:
    c.mlvae.group_by = "label"
    c.mlvae.group_size = 32               # the port's groups are a batch's digits of a class: ~26
    c.loss.llike = "pixel"
    c.loss.pixel_log_scale = 0.3466       # log sqrt(2): the port's squared error, variance 1/2 on [0, 1]
    c.model.mlp_hidden = (500,)
    c.train.batch_size = 256
    c.train.num_steps = 234 * 30          # 30 epochs of 60,000 digits
    c.train.log_every = 117
    c.train.image_every = 1170
    c.checkpoint.every_steps = 1170
  return c


def ccvae(c: ml_collections.ConfigDict, dataset: str) -> ml_collections.ConfigDict:
  """CCVAE (Joy et al. 2021) on ``dataset``, fully supervised; set
  ``--config.ccvae.supervision_rate`` to 0.004, 0.06 or 0.2 for the paper's other rates.

  celeba64: the official code's 18 labels, z of 45 (18 characteristic + 27), its 64x64
  convolutional encoder and decoder with a Laplace(x_hat, 1) likelihood on [0, 1] pixels,
  Adam 1e-4 (the conditional prior's 72 numbers: Adam 1e-2), batch 200, 500 epochs of the
  4,560 training faces (22 batches each; 11,000 steps, 2.5-4 minutes on an H100 shared with 3-10 runs).

  mnist: the digit as ten binary (one-hot) labels, z of 20 (10 + 10), 784-500-ReLU MLPs with
  a Bernoulli decoder, Adam 1e-3, batch 200, 30 epochs.
  """
  c.method = "ccvae"
  c.data.name = dataset
  c.train.batch_size = 200
  if dataset == "celeba64":
    c.ccvae.labels = CCVAE_CELEBA_LABELS
    c.ccvae.networks = "conv"
    c.ccvae.walk_pairs = (("Smiling", "Male"), ("Blond_Hair", "Bangs"), ("Eyeglasses", "Young"))
    c.loss.llike = "laplace"
    c.model.latent_dim = 45
    learning_rate = 1e-4
    # Adam moves a parameter at most about its learning rate per step: at 1e-4 the prior's
    # locations moved 0.1 from their +-2 start in 880 steps while the encoder spread z_c over
    # -11..+10, so interventions at the prior's means landed inside one class's codes. The
    # official code's ~160k steps on all of CelebA give the prior room that our 11,000 steps
    # on 4,560 faces do not; at 1e-2 it follows the codes, and interventions flip the
    # attribute classifier twice as often (21% vs 11%, README). 1e-1 changed nothing more.
    prior_learning_rate = 1e-2
    c.train.num_steps = 22 * 500
    c.train.log_every = 22
    c.train.image_every = 440
    c.checkpoint.every_steps = 440
  else:
    c.ccvae.labels = DIGITS
    c.ccvae.networks = "mlp"
    c.ccvae.walk_pairs = (("3", "8"), ("1", "7"), ("4", "9"))
    c.loss.llike = "bernoulli"
    c.model.latent_dim = 20
    c.model.mlp_hidden = (500,)
    learning_rate = prior_learning_rate = 1e-3
    c.train.num_steps = 300 * 30
    c.train.log_every = 100
    c.train.image_every = 1500
    c.checkpoint.every_steps = 1500
  constant_adam(c, ("encoder", "decoder", "classifier"), learning_rate)
  constant_adam(c, ("prior",), prior_learning_rate)
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks ``c`` in place to tiny widths and a few steps (``configs/<x>.py:smoke``): for tests and CI."""
  c.model.latent_dim = 8
  c.model.encoder_features = (8, 8, 16)
  c.model.encoder_dense = 32
  c.model.decoder_features = (16, 8, 8)
  c.model.discriminator_features = (8, 8, 16, 16)
  c.model.discriminator_dense = 32
  c.train.batch_size = 16
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.image_every = 3
  c.train.num_image_rows = 4
  c.checkpoint.every_steps = 3
  c.data.num_threads = 1
  c.data.prefetch = 2
  c.eval.classifier_epochs = 1
  if c.method == "tvae":   # the embedded digits, so that smoke runs need no data folder
    c.data.name = "mnist5k"
    c.model.mlp_hidden = (32,)
    c.eval.triplets_per_class = 50
  if c.method in ("aae", "semi_aae"):
    c.data.name = "mnist5k"
    c.data.train_split, c.data.validation_split = "train[:4000]", "train[4000:]"
    c.model.mlp_hidden = (32, 32)
    c.eval.parzen_samples = 500
    c.eval.parzen_num_bandwidths = 4
  if c.method == "mlvae":
    c.model.mlp_hidden = (32,)
    c.mlvae.style_dim = c.mlvae.content_dim = 4
    c.mlvae.group_size = 4
    if c.data.name != "celeba64":
      c.data.name = "mnist5k"
  if c.method == "ccvae":
    c.ccvae.num_samples = 8
    c.eval.intervention_images = 40
    c.model.latent_dim = len(c.ccvae.labels) * c.ccvae.block_dim + 4
    if c.ccvae.networks == "mlp":
      c.data.name = "mnist5k"
      c.model.mlp_hidden = (32,)
  return c


def apply_arg(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Applies the ``:arg`` of ``--config configs/x.py:arg``: '' (as is), 'smoke', or 'cpu'
  (``celeba64_cpu``: the CelebA configs of VAE/GAN, VAE and GAN sized for 2 CPU cores).

  Raises:
    ValueError: an unknown argument, or 'cpu' for a config that has no CPU variant.
  """
  if arg == "smoke":
    return smoke(c)
  if arg == "cpu":
    if c.data.name != "celeba64" or c.method not in ("vaegan", "vae", "gan"):
      raise ValueError(f"the :cpu variant exists for configs/{{vaegan,vae,gan}}_celeba.py only, not for method "
                       f"{c.method!r} on {c.data.name!r}; drop ':cpu' (the MNIST configs already fit a CPU)")
    return celeba64_cpu(c)
  if arg:
    raise ValueError(f"unknown config argument {arg!r}; use configs/<file>.py, configs/<file>.py:smoke or, for "
                     "the VAE/GAN, VAE and GAN CelebA configs, configs/<file>.py:cpu")
  return c


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
  if value not in choices:
    raise ValueError(f"config.{key}={value!r} is not one of {choices}; set --config.{key}=<one of them>")


def _check(ok: bool, key: str, value, rule: str) -> None:
  if not ok:
    raise ValueError(f"config.{key}={value!r} {rule}: set --config.{key} to such a value (or fix the config file)")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks values the ConfigDict's type checks cannot, before anything is computed or written.

  Raises:
    ValueError: naming the key, the bad value, the rule and the flag that fixes it.
  """
  _check_choice(config.method, METHODS, "method")
  if config.data.name == "folder":
    _check(bool(config.data.path), "data.path", config.data.path, "must name the image folder for data.name='folder'")
  elif not config.data.name.startswith("tfds:"):
    _check_choice(config.data.name, DATASETS + ("folder", "tfds:<name>"), "data.name")
  _check(config.data.channels in (1, 3), "data.channels", config.data.channels, "must be 1 (grey) or 3 (RGB)")
  _check(config.data.image_size >= 8, "data.image_size", config.data.image_size, "must be >= 8 pixels")
  _check(len(config.data.crop) in (0, 4), "data.crop", config.data.crop,
         "must be () or (left, top, right, bottom)")
  _check(0.0 < config.data.test_fraction < 1.0, "data.test_fraction", config.data.test_fraction, "must be in (0, 1)")
  _check_choice(config.loss.llike, LLIKES, "loss.llike")
  _check_choice(config.loss.generator, GENERATOR_LOSSES, "loss.generator")
  _check_choice(config.model.dtype, MODEL_DTYPES, "model.dtype")
  _check_choice(config.model.conv_padding, CONV_PADDINGS, "model.conv_padding")
  if config.method == "vaegan" and config.loss.llike != "dis_l":
    raise ValueError("config.method='vaegan' learns its similarity in Dis_l: set --config.loss.llike=dis_l "
                     "(a pixel likelihood with a discriminator is not a model of the paper)")
  bernoulli = ("tvae", "aae", "semi_aae")
  if config.method in bernoulli and config.loss.llike != "bernoulli":
    raise ValueError(f"config.method={config.method!r} has a Bernoulli decoder: set --config.loss.llike=bernoulli")
  if config.method not in bernoulli + ("mlvae", "ccvae") and config.loss.llike == "bernoulli":
    raise ValueError(f"config.loss.llike='bernoulli' is the decoder of {bernoulli}; config.method={config.method!r} "
                     "uses dis_l (vaegan) or pixel (vae)")
  _validate_aae(config)
  _validate_mlvae(config)
  _validate_ccvae(config)
  if config.method == "vae" and config.loss.llike != "pixel":
    raise ValueError("config.method='vae' has no discriminator, so its likelihood is on pixels: "
                     "set --config.loss.llike=pixel")
  positive = {f"train.{k}": config.train[k] for k in (
      "batch_size", "num_steps", "log_every", "image_every", "num_image_rows", "max_consecutive_nonfinite")}
  positive.update({f"checkpoint.{k}": config.checkpoint[k] for k in ("every_steps", "max_to_keep")})
  positive.update({f"model.{k}": config.model[k] for k in (
      "latent_dim", "encoder_dense", "discriminator_dense", "bn_epsilon")})
  positive.update({f"eval.{k}": config.eval[k] for k in (
      "batch_size", "classifier_epochs", "num_pairs", "interpolation_steps", "triplets_per_class",
      "intervention_images")})
  positive["data.num_threads"] = config.data.num_threads
  for name in ("encoder", "decoder", "discriminator", "generator", "classifier", "prior"):
    o = config.optim[name]
    _check_choice(o.optimizer, OPTIMIZERS, f"optim.{name}.optimizer")
    positive.update({f"optim.{name}.learning_rate": o.learning_rate, f"optim.{name}.eps": o.eps})
    _check(0 < o.decay_per_epoch <= 1, f"optim.{name}.decay_per_epoch", o.decay_per_epoch, "must be in (0, 1]")
    _check(0 <= o.rmsprop_decay < 1, f"optim.{name}.rmsprop_decay", o.rmsprop_decay, "must be in [0, 1)")
    _check(0 <= o.adam_b1 < 1, f"optim.{name}.adam_b1", o.adam_b1, "must be in [0, 1)")
    _check(0 <= o.momentum < 1, f"optim.{name}.momentum", o.momentum, "must be in [0, 1)")
    _check(0 < o.step_decay <= 1, f"optim.{name}.step_decay", o.step_decay, "must be in (0, 1]")
    epochs = tuple(o.step_decay_epochs)
    _check(all(isinstance(e, int) and e > 0 for e in epochs) and list(epochs) == sorted(set(epochs)),
           f"optim.{name}.step_decay_epochs", epochs, "must list increasing positive epoch numbers")
    _check_choice(o.schedule, SCHEDULES, f"optim.{name}.schedule")
    _check(o.decay_power > 0, f"optim.{name}.decay_power", o.decay_power, "must be positive")
    _check(o.decay_epoch_images >= 0, f"optim.{name}.decay_epoch_images", o.decay_epoch_images,
           "must be a number of images >= 0 (0: one pass over the training split)")
    if o.schedule == "power":
      _check(o.min_learning_rate <= o.learning_rate, f"optim.{name}.min_learning_rate", o.min_learning_rate,
             f"must be at most optim.{name}.learning_rate={o.learning_rate} (the power schedule decays to it)")
    for key in ("min_learning_rate", "weight_decay"):
      _check(o[key] >= 0, f"optim.{name}.{key}", o[key], "must be >= 0")
  for key, value in positive.items():
    _check(value > 0, key, value, "must be positive")
  for key in ("elbo_weight", "triplet_weight", "triplet_margin", "mu_norm_weight"):
    _check(config.loss[key] >= 0, f"loss.{key}", config.loss[key], "must be >= 0")
  for key in ("encoder_features", "decoder_features", "discriminator_features", "mlp_hidden"):
    value = tuple(config.model[key])
    _check(len(value) >= (2 if key == "discriminator_features" else 0 if key == "mlp_hidden" else 1)
           and all(isinstance(f, int) and f > 0 for f in value),
           f"model.{key}", value, "must list positive channel counts (the discriminator at least two)")
  _check(0 <= config.model.bn_momentum < 1, "model.bn_momentum", config.model.bn_momentum, "must be in [0, 1)")
  _check(config.data.prefetch >= 0, "data.prefetch", config.data.prefetch, "must be >= 0")
  _check(config.loss.gamma >= 0, "loss.gamma", config.loss.gamma, "must be >= 0")
  _check(config.balance.margin >= 0, "balance.margin", config.balance.margin, "must be >= 0")
  _check(config.balance.equilibrium >= 0, "balance.equilibrium", config.balance.equilibrium,
         "must be >= 0 (it is a BCE cost in nats; the paper uses 0.68)")


def _validate_aae(config: ml_collections.ConfigDict) -> None:
  a = config.aae
  _check_choice(a.prior, PRIORS, "aae.prior")
  _check(a.num_components >= 2, "aae.num_components", a.num_components, "must be at least 2")
  _check(a.num_labels > 0, "aae.num_labels", a.num_labels, "must be positive")
  _check(0 <= a.encoder_dropout < 1, "aae.encoder_dropout", a.encoder_dropout, "must be in [0, 1)")
  _check(0 <= a.init_std < 1, "aae.init_std", a.init_std, "must be in [0, 1) (0: Flax's default initialisation)")
  _check(isinstance(a.y_minibatch_mean, bool), "aae.y_minibatch_mean", a.y_minibatch_mean, "must be True or False")
  _check(a.labelled_shift >= 0, "aae.labelled_shift", a.labelled_shift, "must be >= 0 pixels (0: no translation)")
  _check(0 <= a.labelled_rotation <= 180, "aae.labelled_rotation", a.labelled_rotation,
         "must be in [0, 180] degrees (0: no rotation)")
  _check(0 <= a.labelled_scale < 1, "aae.labelled_scale", a.labelled_scale, "must be in [0, 1) (0: no scaling)")
  _check(a.consistency_weight >= 0, "aae.consistency_weight", a.consistency_weight, "must be >= 0 (0: no consistency term)")
  _check(a.consistency_rampup_steps >= 0, "aae.consistency_rampup_steps", a.consistency_rampup_steps,
         "must be >= 0 steps (0: the full weight from step 0)")
  if a.consistency_weight and not (a.labelled_shift or a.labelled_rotation or a.labelled_scale):
    raise ValueError("config.aae.consistency_weight > 0 compares q(y|x) with q(y|deformed x), but no deformation is "
                     "set: set aae.labelled_shift, labelled_rotation or labelled_scale, or consistency_weight=0")
  _check(a.normal_class >= -1, "aae.normal_class", a.normal_class, "must be a class index, or -1 for all classes")
  for key in ("parzen_samples", "parzen_num_bandwidths"):
    _check(config.eval[key] > 0, f"eval.{key}", config.eval[key], "must be positive")
  _check(0 < config.eval.parzen_min_bandwidth <= config.eval.parzen_max_bandwidth, "eval.parzen_min_bandwidth",
         config.eval.parzen_min_bandwidth, "must be positive and at most eval.parzen_max_bandwidth")
  if config.method not in ("aae", "semi_aae"):
    return
  if a.prior == "mixture" and config.model.latent_dim % 2:
    raise ValueError(f"config.aae.prior='mixture' pairs code dimensions, so config.model.latent_dim="
                     f"{config.model.latent_dim} must be even: set --config.model.latent_dim to an even size")
  if a.condition_on_label and a.prior != "mixture":
    raise ValueError("config.aae.condition_on_label=True puts class k on mixture component k, which needs "
                     "--config.aae.prior=mixture (a Gaussian prior has no components)")
  if config.method == "semi_aae" and (a.condition_on_label or a.normal_class >= 0 or a.prior != "gaussian"):
    raise ValueError("config.method='semi_aae' learns y itself from a categorical prior with a Gaussian style "
                     "prior: set --config.aae.prior=gaussian --config.aae.condition_on_label=False "
                     "--config.aae.normal_class=-1")
  if not tuple(config.model.mlp_hidden):
    raise ValueError("config.model.mlp_hidden is empty: the AAE's networks need hidden layers, e.g. (1000, 1000)")


def _validate_mlvae(config: ml_collections.ConfigDict) -> None:
  m = config.mlvae
  _check_choice(m.group_by, GROUP_FEATURES, "mlvae.group_by")
  _check_choice(m.networks, MLVAE_NETWORKS, "mlvae.networks")
  for key in ("group_size", "style_dim", "content_dim"):
    _check(m[key] > 0, f"mlvae.{key}", m[key], "must be positive")
  if config.method != "mlvae":
    return
  llikes = {"mlp": ("bernoulli", "pixel"), "conv": ("pixel",)}[m.networks]
  if config.loss.llike not in llikes:
    raise ValueError(f"config.mlvae.networks={m.networks!r} decodes with a {' or '.join(llikes)} likelihood (the MLP "
                     "gives Bernoulli logits or sigmoid pixel means, the conv decoder tanh pixel means): set "
                     f"--config.loss.llike={llikes[-1]}")
  if config.train.batch_size % m.group_size:
    raise ValueError(f"config.train.batch_size={config.train.batch_size} (images) is not a whole number of groups "
                     f"of config.mlvae.group_size={m.group_size}: set --config.train.batch_size to a multiple of "
                     f"{m.group_size}")
  if m.networks == "mlp" and not tuple(config.model.mlp_hidden):
    raise ValueError("config.model.mlp_hidden is empty: the ML-VAE's MLPs need hidden layers, e.g. (500,)")


def _validate_ccvae(config: ml_collections.ConfigDict) -> None:
  m = config.ccvae
  _check_choice(m.networks, CCVAE_NETWORKS, "ccvae.networks")
  _check_choice(m.objective, CCVAE_OBJECTIVES, "ccvae.objective")
  _check(0 < m.supervision_rate <= 1, "ccvae.supervision_rate", m.supervision_rate, "must be in (0, 1]")
  for key in ("block_dim", "num_samples"):
    _check(m[key] > 0, f"ccvae.{key}", m[key], "must be positive")
  if config.loss.llike == "laplace" and config.method != "ccvae":
    raise ValueError("config.loss.llike='laplace' is the CCVAE's likelihood: use pixel or dis_l for "
                     f"config.method={config.method!r}")
  if config.method != "ccvae":
    return
  labels = tuple(m.labels)
  _check(len(labels) > 0 and len(set(labels)) == len(labels), "ccvae.labels", labels,
         "must name at least one label, each once")
  characteristic = len(labels) * m.block_dim
  _check(config.model.latent_dim >= characteristic, "model.latent_dim", config.model.latent_dim,
         f"must hold z_c: at least {len(labels)} labels x ccvae.block_dim {m.block_dim} = {characteristic}")
  for pair in m.walk_pairs:
    if len(pair) != 2 or any(name not in labels for name in pair):
      raise ValueError(f"config.ccvae.walk_pairs has {tuple(pair)!r}: each entry must be two of config.ccvae.labels "
                       f"{labels}; set --config.ccvae.walk_pairs accordingly")
  llike = {"mlp": "bernoulli", "conv": "laplace"}[m.networks]
  if config.loss.llike != llike:
    raise ValueError(f"config.ccvae.networks={m.networks!r} decodes with a {llike} likelihood (the MLP gives "
                     "Bernoulli logits, the conv decoder Laplace locations): set "
                     f"--config.loss.llike={llike}")
  if m.networks == "mlp" and not tuple(config.model.mlp_hidden):
    raise ValueError("config.model.mlp_hidden is empty: the CCVAE's MLPs need hidden layers, e.g. (500,)")


def to_json(config: ml_collections.ConfigDict) -> dict:
  """The config as a JSON-compatible dict (tuples become lists)."""
  return json.loads(config.to_json())


def from_json(data: dict) -> ml_collections.ConfigDict:
  """Inverse of ``to_json`` for a config saved with a checkpoint.

  The saved values are laid over today's ``base_config()``, so a run saved before a key
  existed gets that key's default, except ``model.conv_padding``, which is "same" for such
  runs (their networks were trained with that padding); lists become tuples again, so model
  fields stay hashable.

  Raises:
    ValueError: a saved key that this version does not know (a run of a newer version, or
      not a config of this project).
  """
  def fix(v):
    if isinstance(v, dict):
      return {k: fix(x) for k, x in v.items()}
    if isinstance(v, list):
      return tuple(fix(x) for x in v)
    return v

  def lay_over(target: ml_collections.ConfigDict, values: dict, prefix: str) -> None:
    for k, v in values.items():
      if k not in target:
        raise ValueError(f"saved config key {prefix}{k} is unknown to this version of vaegan_jax")
      if isinstance(v, dict):
        lay_over(target[k], v, f"{prefix}{k}.")
      else:
        target[k] = v

  config = base_config()
  data = fix(data)
  if "conv_padding" not in data.get("model", {"conv_padding": None}):
    config.model.conv_padding = "same"  # saved before the key existed: trained with XLA's 'SAME' padding
  lay_over(config, data, "")
  return config

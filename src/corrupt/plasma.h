/* plasma.h: the plasma fractal of CIFAR-10-C's fog (and of the frost stand-in here), internal. */
#ifndef AT_PLASMA_H
#define AT_PLASMA_H

#include "advtrain.h"

/* The smallest power of two >= max(h, w) (at least 2): the side of the map that covers an image. */
int at_plasma_size(int h, int w);

/* Fills map [size, size] (size a power of two >= 2) with a diamond-square heightmap scaled to
 * [0, 1]: a random displacement of amplitude wibble^2 (wibble = 100 at first, divided by
 * `decay` after each level; a smaller decay gives rougher detail) on the mean of the four
 * neighbours, wrapping around the edges. */
void at_plasma_fractal(double *map, int size, double decay, at_rng *rng);

#endif

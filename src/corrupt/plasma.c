/* plasma.c: the plasma fractal of Hendrycks and Dietterich's fog corruption (make_cifar_c.py,
 * plasma_fractal, itself after the diamond-square map generator of FLHerne/mapgen): the square
 * step sets the centre of every square of side `step` to the mean of its four corners plus noise,
 * the diamond step the midpoint of every edge to the mean of its four diamond neighbours plus
 * noise; the map is a torus (neighbours wrap, as np.roll does), starts from map[0][0] = 0, and
 * the noise, uniform in [-wibble^2, wibble^2], shrinks by `decay` in wibble per halving. */
#include "corrupt/plasma.h"

#include <math.h>

int at_plasma_size(int h, int w)
{
    const int side = h > w ? h : w;
    int size = 2;
    while (size < side)
        size *= 2;
    return size;
}

static double displaced(double sum, double wibble, at_rng *rng)
{
    return sum / 4.0 + wibble * wibble * (2.0 * at_rng_uniform(rng) - 1.0);
}

void at_plasma_fractal(double *map, int size, double decay, at_rng *rng)
{
    const int mask = size - 1; /* wrap-around indexing on a power-of-two torus */
#define M(i, j) map[(size_t)((i) & mask) * size + ((j) & mask)]
    M(0, 0) = 0.0;
    double wibble = 100.0;
    for (int step = size; step >= 2; step /= 2, wibble /= decay) {
        const int half = step / 2;
        /* squares: centres from the four corners */
        for (int i = 0; i < size; i += step)
            for (int j = 0; j < size; j += step)
                M(i + half, j + half) = displaced(M(i, j) + M(i + step, j) + M(i, j + step) +
                                                      M(i + step, j + step), wibble, rng);
        /* diamonds: edge midpoints on the rows of corners, then on the rows of centres */
        for (int i = 0; i < size; i += step)
            for (int j = 0; j < size; j += step)
                M(i, j + half) = displaced(M(i + half, j + half) + M(i - half, j + half) + M(i, j) +
                                               M(i, j + step), wibble, rng);
        for (int i = 0; i < size; i += step)
            for (int j = 0; j < size; j += step)
                M(i + half, j) = displaced(M(i + half, j + half) + M(i + half, j - half) + M(i, j) +
                                               M(i + step, j), wibble, rng);
    }
#undef M
    const size_t count = (size_t)size * size;
    double lo = map[0], hi = map[0];
    for (size_t k = 1; k < count; k++) {
        lo = fmin(lo, map[k]);
        hi = fmax(hi, map[k]);
    }
    for (size_t k = 0; k < count; k++)
        map[k] = hi > lo ? (map[k] - lo) / (hi - lo) : 0.0;
}

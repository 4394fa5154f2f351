<?php

declare(strict_types=1);

namespace TrioS3Rpc;

/** An object's visibility; every method taking one also takes the string. */
enum Visibility: string
{
    case Public = 'public';
    case Private = 'private';
}

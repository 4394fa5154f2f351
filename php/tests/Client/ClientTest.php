<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\FileNotFound;
use TrioS3Rpc\Exception\InvalidVisibility;
use TrioS3Rpc\Result\ObjectEntry;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\GoridgeTransport;

/** Every s3.* method through the typed client, over tcp and unix, JSON and msgpack. */
final class ClientTest extends TestCase
{
    /** @return array<string, array{Client}> */
    public static function clients(): array
    {
        return LiveServer::clients();
    }

    /** @dataProvider clients */
    public function testWriteReadExistsDeleteWithBinaryContent(Client $client): void
    {
        $path = LiveServer::unique('binary.bin');
        $bytes = "\x00\xff\xfe" . random_bytes(1000) . "caf\u{e9}";
        $written = $client->write('sw', $path, $bytes, metadata: ['author' => 'ann']);
        self::assertSame($path, $written->pathname);
        self::assertSame(strlen($bytes), $written->size);
        self::assertSame('crc32c:' . hash('crc32c', $bytes), $written->checksum);
        self::assertEqualsWithDelta(time(), $written->lastModified, 60);

        $read = $client->read('sw', $path);
        self::assertSame($bytes, $read->content);
        self::assertSame(strlen($bytes), $read->size);
        self::assertSame('application/octet-stream', $read->mimeType);

        $range = $client->read('sw', $path, 1, 2);
        self::assertSame("\xff\xfe", $range->content);
        self::assertSame(strlen($bytes), $range->size);
        self::assertSame('', $client->read('sw', $path, strlen($bytes))->content);

        self::assertTrue($client->exists('sw', $path));
        $client->delete('sw', $path);
        self::assertFalse($client->exists('sw', $path));
        $client->delete('sw', $path); // deleting what is gone succeeds
        $this->expectException(FileNotFound::class);
        $client->read('sw', $path);
    }

    /** @dataProvider clients */
    public function testTheDefaultBucketIsUsedWhenNoneIsNamed(Client $client): void
    {
        $path = LiveServer::unique('default.txt');
        $client->write('', $path, 'hi');
        self::assertSame('hi', $client->read('sw', $path)->content);
        self::assertSame('text/plain', $client->getMetadata('', $path)->mimeType);
    }

    /** @dataProvider clients */
    public function testListBucketsAndRegisterBucket(Client $client): void
    {
        $name = 'reg-' . bin2hex(random_bytes(4));
        $message = $client->registerBucket($name, 'seaweedfs', 'test-bucket', 'registered/', 'private', ['visibility_mode' => 'none']);
        self::assertSame('Bucket registered successfully', $message);
        $list = $client->listBuckets();
        self::assertContains($name, $list->buckets);
        self::assertContains('sw', $list->buckets);
        self::assertSame('sw', $list->default);
        $sorted = $list->buckets;
        sort($sorted);
        self::assertSame($sorted, $list->buckets);
        $client->write($name, 'x.txt', 'registered');
        self::assertSame('registered', $client->read($name, 'x.txt')->content);
        $client->delete($name, 'x.txt');
    }

    /** @dataProvider clients */
    public function testCopyMoveAndMetadata(Client $client): void
    {
        $source = LiveServer::unique('a.txt');
        $client->write('sw', $source, 'copied bytes', metadata: ['k' => 'v']);
        $copy = $client->copy('sw', $source, 'sw', $source . '.copy');
        self::assertSame(12, $copy->size);
        self::assertSame('copied bytes', $client->read('sw', $source . '.copy')->content);

        $moved = $client->move('sw', $source . '.copy', 'sw', $source . '.moved');
        self::assertSame($source . '.moved', $moved->pathname);
        self::assertFalse($client->exists('sw', $source . '.copy'));

        $meta = $client->getMetadata('sw', $source . '.moved');
        self::assertSame(12, $meta->size);
        self::assertSame('private', $meta->visibility);
        self::assertNotSame('', $meta->etag);
        self::assertSame('crc32c:' . hash('crc32c', 'copied bytes'), $meta->checksum);
    }

    /** @dataProvider clients */
    public function testVisibilityOnAnAclBucketAndRefusedOnANoneBucket(Client $client): void
    {
        $path = LiveServer::unique('v.txt');
        $client->write('moto', $path, 'v', visibility: 'public');
        self::assertSame('public', $client->getMetadata('moto', $path)->visibility);
        $client->setVisibility('moto', $path, 'private');
        self::assertSame('private', $client->getMetadata('moto', $path)->visibility);

        $client->write('sw', $path, 'v');
        $client->setVisibility('sw', $path, 'private'); // its own visibility: nothing to change
        try {
            $client->setVisibility('sw', $path, 'public');
            self::fail('a none bucket must refuse per-object visibility');
        } catch (InvalidVisibility $e) {
            self::assertSame('INVALID_VISIBILITY', $e->errorCode);
            self::assertStringContainsString('visibility_mode: none', $e->getMessage());
        }
    }

    /** @dataProvider clients */
    public function testPublicAndPresignedUrls(Client $client): void
    {
        $path = LiveServer::unique('url.txt');
        $client->write('sw', $path, 'by url');
        $permanent = $client->getPublicUrl('sw', $path);
        self::assertSame(0, $permanent->expiresAt);
        self::assertStringStartsWith(LiveServer::env('TRIO_S3RPC_SEAWEEDFS'), $permanent->url);
        $presigned = $client->getPublicUrl('sw', $path, 300);
        self::assertEqualsWithDelta(time() + 300, $presigned->expiresAt, 5);
        self::assertSame('by url', file_get_contents($presigned->url));
    }

    /** @dataProvider clients */
    public function testListingPagesAndDirectories(Client $client): void
    {
        $dir = LiveServer::unique('list');
        foreach (['a.txt', 'b.txt', 'sub/c.txt', 'sub/d.txt', 'e.txt'] as $name) {
            $client->write('sw', "$dir/$name", $name);
        }
        $shallow = $client->listObjects('sw', "$dir/", '/');
        self::assertSame(["$dir/a.txt", "$dir/b.txt", "$dir/e.txt"], array_map(static fn (ObjectEntry $o) => $o->key, $shallow->objects));
        self::assertSame(["$dir/sub/"], $shallow->commonPrefixes);
        self::assertFalse($shallow->isTruncated);

        $keys = [];
        $token = '';
        $pages = 0;
        do {
            $page = $client->listObjects('sw', "$dir/", maxKeys: 2, continuationToken: $token);
            $keys = [...$keys, ...array_map(static fn (ObjectEntry $o) => $o->key, $page->objects)];
            $token = $page->nextContinuationToken;
            $pages++;
        } while ($page->isTruncated);
        self::assertSame(3, $pages);
        self::assertSame(["$dir/a.txt", "$dir/b.txt", "$dir/e.txt", "$dir/sub/c.txt", "$dir/sub/d.txt"], $keys);
        self::assertSame(strlen('sub/d.txt'), $page->objects[0]->size);

        $deleted = $client->deleteMany('sw', [...$keys, '../bad']);
        self::assertEqualsCanonicalizing($keys, $deleted->deleted);
        self::assertCount(1, $deleted->errors);
        self::assertSame('../bad', $deleted->errors[0]->pathname);
        self::assertSame('INVALID_PATHNAME', $deleted->errors[0]->code);
        self::assertSame([], $client->listObjects('sw', "$dir/")->objects);
    }

    /** @dataProvider clients */
    public function testWriteFileAndReadFile(Client $client): void
    {
        $root = LiveServer::env('TRIO_S3RPC_LOCAL_ROOT');
        $source = tempnam($root, 'src');
        $bytes = random_bytes(300_000);
        file_put_contents($source, $bytes);
        $path = LiveServer::unique('file.bin');
        $written = $client->writeFile('sw', $path, $source, contentType: 'application/x-test');
        self::assertSame(300_000, $written->size);
        $destination = "$source.back";
        $read = $client->readFile('sw', $path, $destination);
        self::assertSame(300_000, $read->size);
        self::assertSame('application/x-test', $read->mimeType);
        self::assertSame($bytes, file_get_contents($destination));
        unlink($source);
        unlink($destination);
    }

    /** @dataProvider clients */
    public function testChunkedUploadStartChunkStatusFinishAndAbort(Client $client): void
    {
        $path = LiveServer::unique('chunked.bin');
        $id = $client->uploadStart('sw', $path, contentType: 'text/csv');
        $first = random_bytes(6 << 20);
        $second = random_bytes(1000);
        self::assertSame(strlen($first), $client->uploadChunk($id, $first, 0));
        self::assertSame(strlen($first) + 1000, $client->uploadChunk($id, $second, strlen($first)));
        $status = $client->uploadStatus($id);
        self::assertSame(0, $status->committedBytes % (5 << 20));
        $finished = $client->uploadFinish($id, strlen($first) + 1000);
        self::assertSame(strlen($first) + 1000, $finished->size);
        self::assertSame('crc32c:' . hash('crc32c', $first . $second), $finished->checksum);
        self::assertSame($first . $second, $client->read('sw', $path)->content);
        self::assertSame('text/csv', $client->getMetadata('sw', $path)->mimeType);

        $aborted = $client->uploadStart('sw', $path . '.aborted');
        $client->uploadChunk($aborted, 'never finished', 0);
        $client->uploadAbort($aborted);
        self::assertFalse($client->exists('sw', $path . '.aborted'));
    }

    /** @dataProvider clients */
    public function testTransferStatusOfACallWithATransferId(Client $client): void
    {
        $id = 'php-' . bin2hex(random_bytes(4));
        $path = LiveServer::unique('tracked.txt');
        $client->withControl(transferId: $id, timeout: 60)->write('sw', $path, 'tracked');
        $status = $client->transferStatus($id);
        self::assertSame('completed', $status->state);
        self::assertSame('s3.Write', $status->method);
        self::assertEqualsWithDelta(time(), $status->startedAt, 60);
        self::assertSame('completed', $client->cancel($id)); // too late to cancel: it says so
    }

    public function testAnyObjectWithACallMethodIsAcceptedAsTheConnection(): void
    {
        // What RoadRunner's Spiral\Goridge\RPC\RPC looks like to this client: call() that
        // answers arrays and throws ServiceException("Error '...' on relay") on an error.
        $spiralLike = new class (new GoridgeTransport(LiveServer::env('TRIO_S3RPC_TCP'))) {
            public function __construct(private GoridgeTransport $transport)
            {
            }

            public function call(string $method, mixed $payload, mixed $options = null): mixed
            {
                try {
                    return $this->transport->call($method, $payload);
                } catch (\TrioS3Rpc\Exception\RpcError $e) {
                    throw new \RuntimeException("Error '{$e->getMessage()}' on tcp://127.0.0.1");
                }
            }
        };
        $client = new Client($spiralLike);
        $path = LiveServer::unique('spiral.txt');
        $client->write('sw', $path, "bytes \x00 as base64");
        self::assertSame("bytes \x00 as base64", $client->read('sw', $path)->content);
        try {
            $client->read('sw', $path . '.missing');
            self::fail('expected FileNotFound');
        } catch (FileNotFound $e) {
            self::assertSame('FILE_NOT_FOUND', $e->errorCode);
            self::assertSame('File not found', $e->errorMessage);
            self::assertStringContainsString('pathname: ' . $path . '.missing', $e->details);
        }
    }

    public function testARelayFailureOfAnExternalRpcIsConnectionFailed(): void
    {
        $broken = new class () {
            public function call(string $method, mixed $payload): mixed
            {
                throw new FakeRelayException('unable to write payload to the stream');
            }
        };
        $this->expectException(\TrioS3Rpc\Exception\ConnectionFailed::class);
        $this->expectExceptionMessage('unable to write payload to the stream');
        (new Client($broken))->listBuckets();
    }
}

#!/usr/bin/perl
# Independent SRS implementation for Petrel's tests: Debian's
# libmail-srs-perl (Mail::SRS::Guarded, by the author of the SRS paper).
# Reads lines "forward TIME SENDER" or "reverse TIME ADDRESS" on stdin
# and prints one result line each ("ERR <message>" on failure).
# The key is the hex in $SRS_KEY_HEX; ALIAS is the rewriting domain.
use strict;
use warnings;
our $now = 0;
BEGIN { *CORE::GLOBAL::time = sub { return $now }; }
use Mail::SRS::Guarded;

my $key = pack("H*", $ENV{SRS_KEY_HEX});
my $alias = $ENV{SRS_ALIAS};
# srslib's validity_days is 21 (today and 20 days back); Mail::SRS
# accepts MaxAge days after today, so MaxAge 20 is the same window.
my $srs = Mail::SRS::Guarded->new(Secret => $key, MaxAge => 20, HashLength => 4, HashMin => 4,
	AlwaysRewrite => 1);
$| = 1;
while (my $line = <STDIN>) {
	chomp $line;
	my ($op, $t, $addr) = split(/ /, $line, 3);
	$now = $t;
	my $out = eval {
		$op eq "forward" ? $srs->forward($addr, $alias) : $srs->reverse($addr);
	};
	if ($@) {
		my $e = $@;
		$e =~ s/\s+at \S+ line \d+.*//s;
		print "ERR $e\n";
	} else {
		print "$out\n";
	}
}
